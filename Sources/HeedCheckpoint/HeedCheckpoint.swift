/// The HeedCheckpoint module; see README.md for its role.
enum HeedCheckpointModule {}
