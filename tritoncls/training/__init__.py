"""The training side: data, train, evaluate, predict, export."""
