"""Generation: sampling, the token loop, the tasks (continue / render / free), loops, the `AudioGen` engine
and batch jobs."""
