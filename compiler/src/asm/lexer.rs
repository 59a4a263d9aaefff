//! Splits one line of assembly into tokens, each with its 1-based column.
//! Comments (`#` to the end of the line) are dropped here.

use super::{AsmError, AsmErrorKind};

/// One token of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// A mnemonic, label name, keyword or unsigned number (`[A-Za-z0-9_.]+`).
    Word(&'a str),
    /// `%` followed by a word: a register (`%r1`).
    Reg(&'a str),
    Comma,
    Colon,
    LBracket,
    RBracket,
    Plus,
    Minus,
}

impl Tok<'_> {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Reg(r) => format!("'%{r}'"),
            Tok::Comma => "','".into(),
            Tok::Colon => "':'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Plus => "'+'".into(),
            Tok::Minus => "'-'".into(),
        }
    }
}

/// A token and the 1-based column of its first character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Spanned<'a> {
    pub tok: Tok<'a>,
    pub col: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Tokenize `text`, line number `line` (1-based). Also returns the column
/// just past the last token's text (where a comment starts, or the line ends),
/// for "expected ..., found end of line" errors.
pub(crate) fn lex_line(line: usize, text: &str) -> Result<(Vec<Spanned<'_>>, usize), AsmError> {
    let mut out = Vec::new();
    // (byte index, char) pairs; the column counts characters, not bytes.
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let mut eol = chars.len() + 1;
    while let Some(&(start, c)) = chars.get(i) {
        let col = i + 1;
        let single = match c {
            '#' => {
                eol = col;
                break;
            }
            ',' => Some(Tok::Comma),
            ':' => Some(Tok::Colon),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            '+' => Some(Tok::Plus),
            '-' => Some(Tok::Minus),
            _ => None,
        };
        if let Some(tok) = single {
            out.push(Spanned { tok, col });
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let percent = c == '%';
        if !percent && !is_word_char(c) {
            return Err(AsmError::new(
                line,
                col,
                AsmErrorKind::UnexpectedChar { ch: c },
            ));
        }
        let word_start = if percent { i + 1 } else { i };
        let mut j = word_start;
        while chars.get(j).is_some_and(|&(_, c)| is_word_char(c)) {
            j += 1;
        }
        let end = chars.get(j).map_or(text.len(), |&(b, _)| b);
        let begin = chars.get(word_start).map_or(text.len(), |&(b, _)| b);
        let word = text.get(begin..end).unwrap_or("");
        if percent {
            if word.is_empty() {
                return Err(AsmError::new(
                    line,
                    col,
                    AsmErrorKind::BadRegister { name: "%".into() },
                ));
            }
            out.push(Spanned {
                tok: Tok::Reg(word),
                col,
            });
        } else {
            debug_assert!(begin == start);
            out.push(Spanned {
                tok: Tok::Word(word),
                col,
            });
        }
        i = j;
    }
    Ok((out, eol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_columns() {
        let (toks, eol) = lex_line(1, "  ldxw %r0, [%r1-4] # c").unwrap();
        assert_eq!(eol, 21);
        let cols: Vec<usize> = toks.iter().map(|t| t.col).collect();
        assert_eq!(cols, vec![3, 8, 11, 13, 14, 17, 18, 19]);
        assert_eq!(toks[0].tok, Tok::Word("ldxw"));
        assert_eq!(toks[1].tok, Tok::Reg("r0"));
        assert_eq!(toks[5].tok, Tok::Minus);
        assert_eq!(toks[6].tok, Tok::Word("4"));
    }

    #[test]
    fn bad_characters() {
        let e = lex_line(2, "mov %r0, $1").unwrap_err();
        assert_eq!((e.line, e.column), (2, 10));
        let e = lex_line(1, "é!").unwrap_err();
        assert_eq!(e.column, 1);
    }
}
