impl :: bincode :: Encode for Value
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        match self
        {
            Self ::String(field_0)
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (0u32), encoder) ?
                ; :: bincode :: Encode :: encode(field_0, encoder) ?; core ::
                result :: Result :: Ok(())
            }, Self ::Integer(field_0)
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (1u32), encoder) ?
                ; :: bincode :: Encode :: encode(field_0, encoder) ?; core ::
                result :: Result :: Ok(())
            }, Self ::Float(field_0)
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (2u32), encoder) ?
                ; :: bincode :: Encode :: encode(field_0, encoder) ?; core ::
                result :: Result :: Ok(())
            }, Self ::Boolean(field_0)
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (3u32), encoder) ?
                ; :: bincode :: Encode :: encode(field_0, encoder) ?; core ::
                result :: Result :: Ok(())
            }, Self ::Timestamp(field_0)
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (4u32), encoder) ?
                ; :: bincode :: Encode :: encode(field_0, encoder) ?; core ::
                result :: Result :: Ok(())
            }, Self ::Reference { entity, trait_id }
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (5u32), encoder) ?
                ; :: bincode :: Encode :: encode(entity, encoder) ?; ::
                bincode :: Encode :: encode(trait_id, encoder) ?; core ::
                result :: Result :: Ok(())
            }, Self ::List(field_0)
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (6u32), encoder) ?
                ; :: bincode :: Encode :: encode(field_0, encoder) ?; core ::
                result :: Result :: Ok(())
            },
        }
    }
}