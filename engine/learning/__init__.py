"""Learning the user's own categories (labels): decisions, trainings, the review queue.

- `labels.py`: labels and the user's decisions, in the catalog (the only writer of
  `label_decisions`; nothing automatic ever writes there).
- `features.py`: the embeddings a label learns from, read from the catalog.
- `training.py`: the `learn` task job (learning lane): train, compare with the
  active version on the same folds, write the version atomically, promote it or
  not, rescore the library in one vectorised pass, choose the review queue.
- `scoring.py`: the `labels` item stage: new items scored by every active version.
- `review.py`: what the review queue shows, and audits.

The classifier itself (numpy only) is `models/classify`.
"""
