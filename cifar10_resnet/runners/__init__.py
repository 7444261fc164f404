"""Command-line entry points of the cifar10_resnet family: thin modules over lottery_ticket.cli."""
