import XCTest
@testable import CLIP
final class CLIPTests: XCTestCase { func testNothing() {} }
