// libFuzzer target: arbitrary bytes (invalid UTF-8 included) into CLIPTokenizer.
//
// The first byte picks the context length (2…257) and whether the rest is repeated up to 8 KiB
// (long captions; capped at 8 KiB because one 64K-scalar word takes over 10 s under
// AddressSanitizer, a known cost of BPE on long words). Invariants: nothing traps; the layout is
// <start_of_text>, ids within the vocabulary, <end_of_text> last and at endOfTextIndex (its first
// occurrence: a caption may spell the special token), zero padding;
// the String and UTF-8 entry points agree; a second call (word cache warm) gives the same ids.
import CLIPTokenizer

let tokenizer: CLIPTokenizer = {
    do { return try CLIPTokenizer() } catch { fatalError("cannot load the vocabulary: \(error)") }
}()

/// Loads the vocabulary before the first input (it takes seconds under AddressSanitizer, which
/// would count against the first input's timeout).
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    _ = tokenizer
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let first = bytes.first else { return 0 }
    let contextLength = Int(first & 0x7F) * 2 + 2 + Int(first >> 7)
    var text = Array(bytes.dropFirst())
    if first & 0x40 != 0 && !text.isEmpty {
        let cap = 8 * 1024
        var big = [UInt8]()
        big.reserveCapacity(cap)
        while big.count + text.count <= cap { big += text }
        text = big
    }
    let result = tokenizer.tokenize(utf8: text, contextLength: contextLength)
    let ids = result.ids
    precondition(ids.count == contextLength, "ids \(ids.count) for context \(contextLength)")
    precondition(ids[0] == CLIPTokenizer.startOfTextId)
    precondition(result.tokenCount >= 2 && result.tokenCount <= contextLength)
    // A caption may spell "<end_of_text>" (or "<start_of_text>"): open_clip maps the literal to the
    // special id, so the pooled position is the first end id, not always the last token.
    precondition(ids[result.tokenCount - 1] == CLIPTokenizer.endOfTextId)
    precondition(result.endOfTextIndex == ids.firstIndex(of: CLIPTokenizer.endOfTextId))
    precondition(ids[1..<result.tokenCount].allSatisfy { $0 >= 0 && $0 <= CLIPTokenizer.endOfTextId })
    precondition(ids[result.tokenCount...].allSatisfy { $0 == 0 })
    let again = tokenizer.tokenize(String(decoding: text, as: UTF8.self), contextLength: contextLength)
    precondition(again == result, "String and UTF-8 entry points differ, or the word cache changed the result")
    return 0
}

// Built by SwiftPM (Fuzz/swiftpm.sh), the executable's entry point is renamed to
// `FuzzTokenizer_main` and `main` is linked to it; this hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("FuzzTokenizer_main")
public func tokenizerFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    _ = tokenizer
    return llvmFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        return fuzz(UnsafeRawPointer(data), size)
    }
}
