#!/usr/bin/env python3
"""Rust functions longer than N lines outside tests, longest first:

    scripts/long-functions.py [N] [DIR…]      # default 80, crates examples

A small lexer blanks strings, chars and comments, then braces are matched;
#[cfg(test)] items and tests/, benches/, fuzz/ directories are skipped."""
import os, re, sys
N = int(sys.argv[1]) if len(sys.argv) > 1 else 80
roots = sys.argv[2:] or ['crates', 'examples']

def blank(src):
    out = []; i = 0; n = len(src)
    while i < n:
        c = src[i]
        if src.startswith('//', i):
            j = src.find('\n', i); j = n if j < 0 else j
            out.append(' ' * (j - i)); i = j
        elif src.startswith('/*', i):
            j = src.find('*/', i + 2); j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', src[i:j])); i = j
        elif (m := re.match(r'b?r(#*)"', src[i:i+20])) and (i == 0 or not (src[i-1].isalnum() or src[i-1] == '_')):
            end = '"' + m.group(1)
            j = src.find(end, i + m.end()); j = n if j < 0 else j + len(end)
            out.append(re.sub(r'[^\n]', ' ', src[i:j])); i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == '\\' else 1
            j += 1
            out.append(re.sub(r'[^\n]', ' ', src[i:j])); i = j
        elif c == "'" and (m := re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|\\x..|[^\\'])'", src[i:i+12])):
            out.append(' ' * m.end()); i += m.end()
        else:
            out.append(c); i += 1
    return ''.join(out)

fn_re = re.compile(r'\bfn\s+(\w+)')
res = []
def matching_brace(src, k):
    """Index of the `}` closing the `{` at `k` (end of `src` if unclosed)."""
    d = 0; j = k
    while j < len(src):
        if src[j] == '{': d += 1
        elif src[j] == '}':
            d -= 1
            if d == 0: break
        j += 1
    return j


def rust_files(root):
    if os.path.isfile(root):
        yield root
        return
    for dp, dns, fns in os.walk(root):
        dns[:] = [d for d in dns if d not in ('target', '.git', 'tests', 'fuzz', 'benches')]
        for f in fns:
            if f.endswith('.rs'):
                yield os.path.join(dp, f)

for root in roots:
    if True:
        for p in rust_files(root):
            src = blank(open(p, encoding='utf-8', errors='replace').read())
            # skip #[cfg(test)] items: blank the brace block after them
            for m in list(re.finditer(r'#\[cfg\(test\)\]', src)):
                k = src.find('{', m.end())
                semi = src.find(';', m.end())
                if k < 0 or (0 <= semi < k): continue
                j = matching_brace(src, k)
                src = src[:m.start()] + re.sub(r'[^\n]', ' ', src[m.start():j+1]) + src[j+1:]
            for m in fn_re.finditer(src):
                k = m.end()
                # body starts at first '{' before a ';' at depth 0 (parens/generics ignored)
                while k < len(src) and src[k] not in '{;': k += 1
                if k >= len(src) or src[k] == ';': continue
                j = matching_brace(src, k)
                a = src.count('\n', 0, m.start()); b = src.count('\n', 0, j)
                if b - a + 1 > N:
                    res.append((b - a + 1, p, a + 1, m.group(1)))
for n, p, ln, name in sorted(res, reverse=True):
    print(f"{n:4d}  {p}:{ln}  {name}")
