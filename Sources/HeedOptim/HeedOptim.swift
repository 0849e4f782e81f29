/// The HeedOptim module; see README.md for its role.
enum HeedOptimModule {}
