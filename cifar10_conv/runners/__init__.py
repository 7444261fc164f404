"""Command-line entry points of the cifar10_conv family: thin modules over lottery_ticket.cli."""
