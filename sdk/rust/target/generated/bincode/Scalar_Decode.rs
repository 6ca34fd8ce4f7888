impl < __Context > :: bincode :: Decode < __Context > for Scalar
{
    fn decode < __D : :: bincode :: de :: Decoder < Context = __Context > >
    (decoder : & mut __D) ->core :: result :: Result < Self, :: bincode ::
    error :: DecodeError >
    {
        let variant_index = < u32 as :: bincode :: Decode ::< __D :: Context
        >>:: decode(decoder) ?; match variant_index
        {
            0u32 =>core :: result :: Result ::
            Ok(Self ::String
            {
                0 : :: bincode :: Decode ::< __D :: Context >::
                decode(decoder) ?,
            }), 1u32 =>core :: result :: Result ::
            Ok(Self ::Integer
            {
                0 : :: bincode :: Decode ::< __D :: Context >::
                decode(decoder) ?,
            }), 2u32 =>core :: result :: Result ::
            Ok(Self ::Float
            {
                0 : :: bincode :: Decode ::< __D :: Context >::
                decode(decoder) ?,
            }), 3u32 =>core :: result :: Result ::
            Ok(Self ::Boolean
            {
                0 : :: bincode :: Decode ::< __D :: Context >::
                decode(decoder) ?,
            }), 4u32 =>core :: result :: Result ::
            Ok(Self ::Timestamp
            {
                0 : :: bincode :: Decode ::< __D :: Context >::
                decode(decoder) ?,
            }), 5u32 =>core :: result :: Result ::
            Ok(Self ::Reference
            {
                entity : :: bincode :: Decode ::< __D :: Context >::
                decode(decoder) ?, trait_id : :: bincode :: Decode ::< __D ::
                Context >:: decode(decoder) ?,
            }), variant =>core :: result :: Result ::
            Err(:: bincode :: error :: DecodeError :: UnexpectedVariant
            {
                found : variant, type_name : "Scalar", allowed : &:: bincode
                :: error :: AllowedEnumVariants :: Range { min: 0, max: 5 }
            })
        }
    }
} impl < '__de, __Context > :: bincode :: BorrowDecode < '__de, __Context >
for Scalar
{
    fn borrow_decode < __D : :: bincode :: de :: BorrowDecoder < '__de,
    Context = __Context > > (decoder : & mut __D) ->core :: result :: Result <
    Self, :: bincode :: error :: DecodeError >
    {
        let variant_index = < u32 as :: bincode :: Decode ::< __D :: Context
        >>:: decode(decoder) ?; match variant_index
        {
            0u32 =>core :: result :: Result ::
            Ok(Self ::String
            {
                0 : :: bincode :: BorrowDecode ::< __D :: Context >::
                borrow_decode(decoder) ?,
            }), 1u32 =>core :: result :: Result ::
            Ok(Self ::Integer
            {
                0 : :: bincode :: BorrowDecode ::< __D :: Context >::
                borrow_decode(decoder) ?,
            }), 2u32 =>core :: result :: Result ::
            Ok(Self ::Float
            {
                0 : :: bincode :: BorrowDecode ::< __D :: Context >::
                borrow_decode(decoder) ?,
            }), 3u32 =>core :: result :: Result ::
            Ok(Self ::Boolean
            {
                0 : :: bincode :: BorrowDecode ::< __D :: Context >::
                borrow_decode(decoder) ?,
            }), 4u32 =>core :: result :: Result ::
            Ok(Self ::Timestamp
            {
                0 : :: bincode :: BorrowDecode ::< __D :: Context >::
                borrow_decode(decoder) ?,
            }), 5u32 =>core :: result :: Result ::
            Ok(Self ::Reference
            {
                entity : :: bincode :: BorrowDecode ::< __D :: Context >::
                borrow_decode(decoder) ?, trait_id : :: bincode ::
                BorrowDecode ::< __D :: Context >:: borrow_decode(decoder) ?,
            }), variant =>core :: result :: Result ::
            Err(:: bincode :: error :: DecodeError :: UnexpectedVariant
            {
                found : variant, type_name : "Scalar", allowed : &:: bincode
                :: error :: AllowedEnumVariants :: Range { min: 0, max: 5 }
            })
        }
    }
}