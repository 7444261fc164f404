"""Command-line entry points of the mnist_fc family: thin modules over lottery_ticket.cli."""
