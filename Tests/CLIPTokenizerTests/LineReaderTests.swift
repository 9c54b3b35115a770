import CLIPTokenizer
import XCTest

/// `clipd tokenize` reads its input through `LineReader`; a long line costs in proportion to its
/// length (counted in bytes scanned and moved, not in seconds).
final class LineReaderTests: XCTestCase {
    /// A reader over `input`, delivered in chunks of `chunk` bytes.
    func reader(_ input: [UInt8], chunk: Int) -> LineReader {
        var offset = 0
        return LineReader {
            defer { offset = min(input.count, offset + chunk) }
            return Array(input[offset..<min(input.count, offset + chunk)])
        }
    }

    func lines(_ text: String, chunk: Int) -> [String] {
        var r = reader(Array(text.utf8), chunk: chunk)
        var out: [String] = []
        var expected = 1
        while let (number, line) = r.next() {
            XCTAssertEqual(number, expected)
            expected += 1
            out.append(String(decoding: line, as: UTF8.self))
        }
        return out
    }

    func testLinesAcrossChunkBoundaries() {
        let text = "first\nsecond line\r\n\nlast without newline"
        for chunk in [1, 2, 3, 7, 64, 1 << 16] {
            XCTAssertEqual(lines(text, chunk: chunk), ["first", "second line", "", "last without newline"], "chunk \(chunk)")
        }
        XCTAssertEqual(lines("", chunk: 4), [])
        XCTAssertEqual(lines("\n", chunk: 4), [""])
        XCTAssertEqual(lines("a\n", chunk: 1), ["a"])
    }

    /// Bytes scanned and moved while reading one line of `size` bytes in 64 KiB chunks.
    func cost(lineOf size: Int) -> (scanned: Int, moved: Int) {
        var r = reader([UInt8](repeating: UInt8(ascii: "a"), count: size) + [0x0A], chunk: 1 << 16)
        let line = r.next()
        XCTAssertEqual(line?.line.count, size)
        XCTAssertNil(r.next())
        return (r.scannedBytes, r.movedBytes)
    }

    func testALongLineIsScannedOnceLinearInItsLength() {
        let small = cost(lineOf: 1 << 20), large = cost(lineOf: 4 << 20)
        // Each byte is examined once: the count is the input size, so 4× the input costs 4×
        // (a rescan from the line's start per chunk would cost ~64× and ~256× the input here).
        XCTAssertEqual(small.scanned, (1 << 20) + 1)
        XCTAssertEqual(large.scanned, (4 << 20) + 1)
        XCTAssertEqual(small.moved, 0)
        XCTAssertEqual(large.moved, 0)
    }

    func testManyShortLinesMoveEachByteAtMostOnceAmortized() {
        let line = Array("\"a photo of a cat\"\n".utf8)
        var input: [UInt8] = []
        for _ in 0..<50_000 { input += line }
        var r = reader(input, chunk: 1000)
        var count = 0
        while r.next() != nil { count += 1 }
        XCTAssertEqual(count, 50_000)
        XCTAssertEqual(r.scannedBytes, input.count)
        XCTAssertLessThanOrEqual(r.movedBytes, input.count)
    }
}
