@testable import HeedOptim
