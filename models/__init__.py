"""Networks (TransUNet, Decoder), guided diffusion, Lightning modules and checkpoints."""
