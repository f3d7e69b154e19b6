"""The review queue's rules without Redis: who works which queue, who may act, the words."""

from sinks.review.rules import MAX_NOTE, ErrorKind, ReviewError, ReviewRules, duration, sentence

__all__ = ["MAX_NOTE", "ErrorKind", "ReviewError", "ReviewRules", "duration", "sentence"]
