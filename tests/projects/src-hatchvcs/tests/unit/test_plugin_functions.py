from tallyho.plugins import hashtags, linecount, wordcount


def test_words_keep_apostrophes_and_hyphens_together():
    assert wordcount.main({"text": "It's a well-known fact, isn't it?"}) == {"words": 6}


def test_lines_count_windows_endings_once():
    assert linecount.main({"text": "a\r\n\r\nb\r\n"}) == {"lines": 3, "blank": 1}


def test_hashtags_are_distinct_and_ignore_anchors():
    text = "#Python and #python, see page#3 and ##double #rust"
    assert hashtags.main({"text": text}) == {"tags": ["python", "rust"]}
