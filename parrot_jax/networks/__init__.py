"""Network factories: the image encoder and MLPs shared by the prior and the agents."""
