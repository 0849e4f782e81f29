/// The HeedData module; see README.md for its role.
enum HeedDataModule {}
