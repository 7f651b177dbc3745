"""A simulated AWS for the scaler's own code: in-process services behind real aiobotocore
clients (:mod:`.transport`), on an event loop with virtual time (:mod:`.vloop`)."""
