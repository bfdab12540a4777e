"""One module per group of commands, each with its arguments beside the code that runs them."""
