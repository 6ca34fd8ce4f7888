impl :: bincode :: Encode for Mutation
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        match self
        {
            Self ::PutTrait { entity, value }
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (0u32), encoder) ?
                ; :: bincode :: Encode :: encode(entity, encoder) ?; ::
                bincode :: Encode :: encode(value, encoder) ?; core :: result
                :: Result :: Ok(())
            }, Self ::DeleteTrait { entity, trait_id }
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (1u32), encoder) ?
                ; :: bincode :: Encode :: encode(entity, encoder) ?; ::
                bincode :: Encode :: encode(trait_id, encoder) ?; core ::
                result :: Result :: Ok(())
            }, Self ::DeleteEntity { entity }
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (2u32), encoder) ?
                ; :: bincode :: Encode :: encode(entity, encoder) ?; core ::
                result :: Result :: Ok(())
            }, Self ::Check { entity, expected }
            =>{
                < u32 as :: bincode :: Encode >:: encode(& (3u32), encoder) ?
                ; :: bincode :: Encode :: encode(entity, encoder) ?; ::
                bincode :: Encode :: encode(expected, encoder) ?; core ::
                result :: Result :: Ok(())
            },
        }
    }
}