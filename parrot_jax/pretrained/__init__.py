"""Models pretrained from the prior dataset ("priors from data") besides the flow: the
beta-VAE of VAE-features (``vae``), their losses (``losses``), and the training loop
every pretraining run shares with the flow prior's (``loop``)."""
