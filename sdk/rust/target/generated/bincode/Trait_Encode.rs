impl :: bincode :: Encode for Trait
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.id, encoder) ?; :: bincode ::
        Encode :: encode(&self.trait_type, encoder) ?; :: bincode :: Encode ::
        encode(&self.fields, encoder) ?; core :: result :: Result :: Ok(())
    }
}