/// The HeedTransport module; see README.md for its role.
enum HeedTransportModule {}
