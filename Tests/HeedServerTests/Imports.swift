@testable import HeedServer
