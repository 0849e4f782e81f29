/// The HeedWorker module; see README.md for its role.
enum HeedWorkerModule {}
