"""The generation pipeline shared by chat completions and runs: resolve the model and its strategy, fit the
prompt, generate while collecting what the model said. Runs add their stages around it (runtime/)."""
