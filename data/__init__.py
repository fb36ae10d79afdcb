"""The default dataset: a seeded generator of cats-vs-dogs JPEGs in the Kaggle layout."""
