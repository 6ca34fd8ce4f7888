impl :: bincode :: Encode for Field
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.name, encoder) ?; :: bincode ::
        Encode :: encode(&self.value, encoder) ?; core :: result :: Result ::
        Ok(())
    }
}