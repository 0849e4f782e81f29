@testable import HeedData
