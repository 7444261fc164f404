"""Conv-2, Conv-4 and Conv-6 on CIFAR-10 (paper section 3, dropout section 5).

``constants`` holds the paper's settings per model (``CONFIGS``; ``DEFAULT`` is
Conv-2's) and the ``Family``; ``runners/`` and ``argfiles/`` are thin entry points
over ``lottery_ticket.cli``; ``download_data`` fetches CIFAR-10.
"""
