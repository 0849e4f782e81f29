/// The HeedCoordinator module; see README.md for its role.
enum HeedCoordinatorModule {}
