import XCTest
@testable import CLIPTokenizer

/// One test per cleaning rule of open_clip (ftfy 6.3.1, html.unescape twice, whitespace, lower()).
/// Expected values are what Python gives for the same input.
final class CleaningRuleTests: XCTestCase {
    private func clean(_ text: String) -> String { TextCleaner.cleanLower(text) }

    func testMojibakeIsRepaired() {
        XCTAssertEqual(clean("cafÃ©"), "café")
        XCTAssertEqual(clean("Ã¼ber schÃ¶n"), "über schön")
        XCTAssertEqual(clean("â€œquotedâ€\u{9D} text"), "\"quoted\" text")
        XCTAssertEqual(clean("Ð¿Ð¾Ð¿Ð¾Ð»Ð½ÐµÐ½Ð¸Ðµ"), "пополнение")
        XCTAssertEqual(clean("voilÃ le travail"), "voilà le travail", "U+A0 lost as a space is restored")
    }

    func testDoubleMojibakeIsRepaired() {
        XCTAssertEqual(clean("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows."), "the mona lisa doesn't have eyebrows.")
        XCTAssertEqual(clean("The Mona Lisa doesnÃƒÂ¢Ã¢â€šÂ¬Ã¢â€žÂ¢t have eyebrows."), "the mona lisa doesn't have eyebrows.")
    }

    func testLegitimateAccentedTextIsUntouched() {
        for text in ["naïve résumé façade", "Ærøskøbing straße", "à la carte", "zażółć gęślą jaźń", "ελληνικά", "©2024 ±2°C"] {
            XCTAssertEqual(TextCleaner.fixText(text), text)
        }
    }

    func testHTMLEntitiesAreUnescapedTwice() {
        XCTAssertEqual(clean("cats &amp; dogs"), "cats & dogs")
        XCTAssertEqual(clean("double escaped &amp;amp; and &amp;lt;tag&amp;gt;"), "double escaped & and <tag>")
        XCTAssertEqual(clean("caf&eacute; &#233; &#x263A; &quot;q&quot;"), "café é ☺ \"q\"")
        XCTAssertEqual(clean("&copy 2024 &notit; &#128;"), "© 2024 ¬it; €", "legacy names without ';', longest prefix, cp1252 remap")
        XCTAssertEqual(clean("&#0; &#x110000; &#1;x"), "� � x")
        XCTAssertEqual(clean("&EACUTE;"), "é", "ftfy's upper-case entity, then lower()")
    }

    func testLiteralLessThanStopsFtfyButNotPythonUnescape() {
        // With '<' in a line ftfy leaves entities alone; open_clip's html.unescape still decodes them.
        XCTAssertEqual(TextCleaner.fixText("<b>x</b> &amp;"), "<b>x</b> &amp;")
        XCTAssertEqual(clean("<b>real tags</b> &amp; an entity"), "<b>real tags</b> & an entity")
    }

    func testCurlyQuotesAreStraightened() {
        XCTAssertEqual(clean("it’s “quoted” ‘single’ ʼx ‛y ‟z"), "it's \"quoted\" 'single' 'x 'y \"z")
        let ids = sharedTokenizer.tokenize("it’s").ids
        XCTAssertEqual(ids, sharedTokenizer.tokenize("it's").ids, "the 's contraction fires after uncurling")
    }

    func testFullWidthFormsBecomeASCII() {
        XCTAssertEqual(clean("ＡＢＣ\u{3000}ｆｕｌｌｗｉｄｔｈ ＃１"), "abc fullwidth #1")
        XCTAssertEqual(TextCleaner.fixText("ｶﾀｶﾅ"), "カタカナ")
    }

    func testLigaturesBecomeLetters() {
        XCTAssertEqual(clean("ﬁsh ﬂower ﬀ ﬃ ﬄ ĳ"), "fish flower ff ffi ffl ij")
    }

    func testControlCharactersAreRemovedButZeroWidthSpaceAndSoftHyphenStay() {
        XCTAssertEqual(clean("bell\u{07}char nul\u{0}x del\u{7F}y bom\u{FEFF}z"), "bellchar nulx dely bomz")
        XCTAssertEqual(clean("zero\u{200B}width soft\u{AD}hyphen"), "zero\u{200B}width soft\u{AD}hyphen")
        XCTAssertEqual(clean("\u{1B}[31mred\u{1B}[0m"), "red", "terminal escapes")
    }

    func testC1ControlsAreReadAsWindows1252() {
        XCTAssertEqual(TextCleaner.fixText("\u{93}hi\u{94} \u{85}"), "\"hi\" …")
    }

    func testNFCComposesDecomposedAccents() {
        XCTAssertEqual(clean("cafe\u{301}"), "café")
        XCTAssertEqual(clean("cafe\u{301}").unicodeScalars.count, 4)
    }

    func testLowerAppliesFinalSigma() {
        XCTAssertEqual(clean("ΟΔΟΣ"), "οδος")
        XCTAssertEqual(clean("ΣΑΣ ΣΑΣ."), "σας σας.")
        XCTAssertEqual(clean("Σ"), "σ", "a lone sigma is not final")
        XCTAssertEqual(clean("ΑΣ1"), "ας1")
    }

    func testLowerIgnoresCaseMappingsNewerThanTheReferencePython() {
        // Garay capital letter A (Unicode 16.0): Python 3.11 (Unicode 14.0) leaves it as it is.
        XCTAssertEqual(clean("\u{10D50}"), "\u{10D50}")
        XCTAssertEqual(clean("\u{1C89}"), "\u{1C89}")
    }

    func testLowerMapsDottedCapitalIToIAndCombiningDot() {
        XCTAssertEqual(Array(clean("İstanbul").unicodeScalars.prefix(2)), ["i", "\u{307}"])
    }

    func testWhitespaceIncludingNoBreakSpaceIsCollapsed() {
        XCTAssertEqual(clean("  a\u{A0}b\tc\nd\r\ne\u{3000}f\u{2009}g\u{202F}h  "), "a b c d e f g h")
        // ftfy runs first: it deletes U+1C and reads U+85 as Windows-1252 '…' before split() could see them.
        XCTAssertEqual(clean("g\u{1C}h\u{85}i"), "gh…i")
        XCTAssertEqual(PythonText.collapseWhitespace(Array(" x\u{1C}\u{1D}\u{1E}\u{1F}\u{85}\u{1680}\u{2028}\u{2029}\u{205F}y ".unicodeScalars)), ["x", " ", "y"])
        XCTAssertEqual(clean("non&nbsp;breaking"), "non breaking")
        XCTAssertEqual(clean("\n\t  \r\n"), "")
    }

    func testSpecialTokenTextBecomesSpecialIds() {
        let result = sharedTokenizer.tokenize("a <end_of_text> b <start_of_text>")
        XCTAssertEqual(Array(result.ids.prefix(7)), [49406, 320, 49407, 321, 49406, 49407, 0])
        XCTAssertEqual(result.endOfTextIndex, 2, "pooling happens at the first <end_of_text>")
        XCTAssertEqual(sharedTokenizer.tokenize("<END_OF_TEXT>").ids[1], 49407, "lower-cased before the split")
        XCTAssertNotEqual(sharedTokenizer.tokenize("<ſtart_of_text>").ids[1], 49406, "a case-folded spelling is plain text")
        XCTAssertNotEqual(sharedTokenizer.tokenize("<|endoftext|>").ids[1], 49407, "HF's spelling is plain text")
    }

    func testPreSplitSkipsCombiningYpogegrammeniLikeTheRegexModule() {
        // Under IGNORECASE, U+0345's case variant ι keeps it out of [^\s\p{L}\p{N}]: no piece.
        XCTAssertEqual(sharedTokenizer.tokenize("x\u{345}y").ids, sharedTokenizer.tokenize("x y").ids)
    }
}
