"""Models pretrained from the prior dataset ("priors from data") for the paper's baselines,
besides the flow: the beta-VAE of VAE-features (``vae``), HIRL's conditional VAE over
actions (``cvae``), TrajRL's trajectory VAE (``trajvae``), SPiRL's skill VAE and skill
prior (``spirl``), their losses (``losses``) and training (``train``, by
``config.kind``), reading their run directories (``saved``), and the training loop every
pretraining run shares with the flow prior's (``loop``)."""
