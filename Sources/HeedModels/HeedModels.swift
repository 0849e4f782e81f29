/// The HeedModels module; see README.md for its role.
enum HeedModelsModule {}
