@testable import HeedTransport
