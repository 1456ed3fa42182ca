"""Ready-made applications (customer service, summariser, translator) built on assistants and runs."""
