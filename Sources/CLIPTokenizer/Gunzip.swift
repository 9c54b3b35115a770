import CZlib

/// Decompresses a whole gzip member with zlib (the only C seam of this module).
func gunzip(_ compressed: [UInt8]) throws -> [UInt8] {
    var stream = z_stream()
    // 16 + MAX_WBITS selects gzip framing.
    guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
        throw CLIPTokenizerError(.vocabularyNotGzip, "zlib inflateInit2 failed")
    }
    defer { inflateEnd(&stream) }

    var output = [UInt8]()
    output.reserveCapacity(compressed.count * 3)
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    var input = compressed
    let status: Int32 = input.withUnsafeMutableBufferPointer { inputBuffer in
        stream.next_in = inputBuffer.baseAddress
        stream.avail_in = uInt(inputBuffer.count)
        var result: Int32 = Z_OK
        while result == Z_OK {
            result = chunk.withUnsafeMutableBufferPointer { chunkBuffer in
                stream.next_out = chunkBuffer.baseAddress
                stream.avail_out = uInt(chunkBuffer.count)
                let r = inflate(&stream, Z_NO_FLUSH)
                output.append(contentsOf: chunkBuffer[0..<(chunkBuffer.count - Int(stream.avail_out))])
                return r
            }
            if result == Z_BUF_ERROR && stream.avail_in == 0 { break }
        }
        return result
    }
    guard status == Z_STREAM_END else {
        throw CLIPTokenizerError(.vocabularyNotGzip, "vocabulary is not a complete gzip stream (zlib status \(status))")
    }
    return output
}
