"""Data audit: the four remedies of the reference's analysis module, on top of ``analyze``'s summary.

- :mod:`.label_issues`: mislabeled training texts by confident learning (cleanlab) on out-of-fold
  probabilities from a fast TF-IDF model or k-fold fine-tuning of the user's checkpoint;
- :mod:`.sparse`: dev (or production) texts the training data hardly supports, and unlabeled texts to
  annotate that cover them;
- :mod:`.augment`: offline character/word swap, delete and insert for chosen training texts;
- :mod:`.interpret`: integrated gradients (and occlusion) over the tokens of one prediction.

:mod:`.dataset` reads and checks the data; :mod:`.features` holds the TF-IDF space and the out-of-fold
probabilities; :mod:`.report` writes markdown, JSON and HTML.
"""
