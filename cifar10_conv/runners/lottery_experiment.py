"""Command line for one trial of the lottery ticket experiment on Conv-2/4/6.

    python -m lottery_ticket.cifar10_conv.runners.lottery_experiment \\
        --output_dir=DIR --data_location=DIR --model=conv4 --levels=3

--model picks the paper's settings for that network (learning rate, length,
pruning rates); flags given explicitly override them. --dataset=fashion_mnist
or mnist trains on 28x28x1 images instead. Rerunning resumes the trial."""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_conv import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "lottery_experiment")


if __name__ == "__main__":
    main()
