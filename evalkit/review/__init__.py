"""Review a suite's labels in the browser (``evalkit suite review DIR``).

``open_review(folder)`` loads the suite and asks the local embedding classifier for each case's
two best tasks; ``ReviewServer(session)`` serves the page on 127.0.0.1; ``review_order`` puts
the most informative cases first. Saving sets ``reviewed: true`` and ``label_source: human`` on
every changed or confirmed case, writing ``cases.jsonl`` atomically (see ``session``).
"""

from evalkit.review.app import ReviewServer, create_review_app
from evalkit.review.session import ClassifierView, Edit, Journal, ReviewSession, open_review, review_order

__all__ = ["ClassifierView", "Edit", "Journal", "ReviewServer", "ReviewSession", "create_review_app", "open_review",
           "review_order"]
