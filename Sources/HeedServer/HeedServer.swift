/// The HeedServer module; see README.md for its role.
enum HeedServerModule {}
