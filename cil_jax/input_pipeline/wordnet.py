"""WordNet 3.0 noun hypernym paths, read offline from `data.noun` (no nltk), for class hierarchies.

MGRB (TKDE 2022, multi-granularity regularized re-balancing) builds a class hierarchy for the
ImageNet-derived datasets (miniImageNet, ImageNet-100) from WordNet: its reference code (nltk) takes
each class's synset and follows `synset.hypernyms()[0]` up to the root, storing the path
root -> ... -> leaf as WordNet ids ('n' + 8-digit noun offset: ImageNet's 'n01440764' is the noun
synset at byte offset 01440764 of data.noun). This module does the same from the Debian/Ubuntu
package `wordnet-base` (WordNet 3.0, /usr/share/wordnet/data.noun).

Reading data.noun (man 5 wndb): lines starting with two spaces are the license header; every other
line is one synset,
  synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] p_cnt [ptr ...] | gloss
with w_cnt a 2-digit hexadecimal number, p_cnt a 3-digit decimal one and each pointer four fields,
`pointer_symbol synset_offset pos source/target`. Hypernyms are the '@' pointers, in file order
(the order nltk's hypernyms() returns). Instance synsets (people, places, ...) have no '@' but an
'@i' (instance hypernym) pointer; where a synset has no '@' pointer its '@i' pointers are taken as
its hypernyms, so every noun reaches 'entity' (n00001740). This deviates from nltk, whose
hypernyms() is empty for an instance synset (the reference's walk would stop at it); for ordinary
classes, the ImageNet ones included, nothing changes.

  hypernym_path('n02110341')   ('n00001740', 'n00001930', ..., 'n02084071', 'n02110341')  dalmatian
  tree_distance(a, b)          edges from the deepest common ancestor down to the deeper leaf
                               (MGRB's `sub_depth` in cal_MG.py)
  distance_matrix(paths)       [C, C] int matrix of tree_distance
  tree_height(paths)           edges from the deepest node common to all paths to the deepest leaf

The file (~82k synsets, 15 MB) is parsed once per resolved path and cached (functools.lru_cache);
the returned dicts are shared between callers: read them, do not modify them.
"""
from __future__ import annotations

import functools
import os
import re

import numpy as np

ENV_VAR = 'WORDNET_DATA'  # a folder holding data.noun, looked at before DEFAULT_PATHS
DEFAULT_PATHS = ('/usr/share/wordnet/data.noun',)  # where Debian/Ubuntu's wordnet-base installs it
_MISSING = ('WordNet 3.0 data (data.noun) not found; install the Debian/Ubuntu package wordnet-base '
            '(apt-get install wordnet-base) or set WORDNET_DATA to the folder holding data.noun')
_WNID = re.compile(r'n\d{8}')


def find_data_noun(path: str = '') -> str:
  """The first existing file among `path` (a data.noun file, or the folder holding one),
  $WORDNET_DATA/data.noun and DEFAULT_PATHS; FileNotFoundError naming the fix otherwise."""
  candidates = []
  if path:
    candidates.append(os.path.join(path, 'data.noun') if os.path.isdir(path) else path)
  if os.environ.get(ENV_VAR):
    candidates.append(os.path.join(os.environ[ENV_VAR], 'data.noun'))
  candidates.extend(DEFAULT_PATHS)
  for candidate in candidates:
    if os.path.isfile(candidate):
      return os.path.abspath(candidate)
  raise FileNotFoundError(_MISSING)


@functools.lru_cache(maxsize=None)
def _parse(data_noun: str) -> tuple[dict[int, tuple[int, ...]], dict[int, str]]:
  """(offset -> hypernym offsets, offset -> first lemma) of one data.noun file."""
  hypernyms, words = {}, {}
  with open(data_noun, encoding='utf-8') as f:
    for line in f:
      if line.startswith('  ') or not line.strip():
        continue  # license header
      fields = line.split(' | ', 1)[0].split()
      offset = int(fields[0])
      w_cnt = int(fields[3], 16)
      words[offset] = fields[4]
      p_at = 4 + 2 * w_cnt
      p_cnt = int(fields[p_at])
      hyper, instance = [], []
      for i in range(p_at + 1, p_at + 1 + 4 * p_cnt, 4):
        symbol, target, pos = fields[i], fields[i + 1], fields[i + 2]
        if pos == 'n' and symbol == '@':
          hyper.append(int(target))
        elif pos == 'n' and symbol == '@i':
          instance.append(int(target))
      hypernyms[offset] = tuple(hyper or instance)
  return hypernyms, words


def load_hypernyms(path: str = '') -> dict[int, tuple[int, ...]]:
  """Noun offset -> its hypernym offsets in file order: the '@' pointers, or, for a synset without
  any, its '@i' (instance hypernym) pointers; () for the root. Cached; do not modify."""
  return _parse(find_data_noun(path))[0]


def load_words(path: str = '') -> dict[int, str]:
  """Noun offset -> the synset's first lemma as written in data.noun ('electric_guitar'). Cached."""
  return _parse(find_data_noun(path))[1]


def hypernym_path(wnid: str, path: str = '') -> tuple[str, ...]:
  """Root-first wnids from the root ('n00001740', entity, in WordNet) down to `wnid` itself,
  following the FIRST hypernym at every level (the reference's `synset.hypernyms()[0]`)."""
  if not isinstance(wnid, str) or not _WNID.fullmatch(wnid):
    raise ValueError(f"bad WordNet noun id {wnid!r}: expected 'n' followed by 8 digits, e.g. 'n01440764'")
  data_noun = find_data_noun(path)
  hypernyms = _parse(data_noun)[0]
  offset = int(wnid[1:])
  if offset not in hypernyms:
    raise ValueError(f'unknown WordNet noun id {wnid!r}: no synset at that offset in {data_noun}')
  chain = [offset]
  while hypernyms.get(chain[-1]):
    parent = hypernyms[chain[-1]][0]
    if parent in chain:
      raise ValueError(f'hypernym cycle at n{parent:08d} on the path of {wnid!r} in {data_noun}')
    chain.append(parent)
  return tuple(f'n{o:08d}' for o in reversed(chain))


def _common_prefix_len(a, b) -> int:
  n = 0
  for x, y in zip(a, b):
    if x != y:
      break
    n += 1
  return n


def tree_distance(path_a, path_b) -> int:
  """Edges from the deepest common ancestor (longest common prefix of the two root-first paths)
  down to the deeper of the two leaves: max(len(a), len(b)) - common prefix; 0 for equal paths."""
  return max(len(path_a), len(path_b)) - _common_prefix_len(path_a, path_b)


def _codes(paths) -> tuple[np.ndarray, np.ndarray]:
  """Paths as an int [C, depth] array of node codes (padding -1, never equal to a node) + lengths."""
  lengths = np.array([len(p) for p in paths], np.int64)
  index = {}
  codes = np.full((len(paths), int(lengths.max(initial=0))), -1, np.int64)
  for i, p in enumerate(paths):
    codes[i, :len(p)] = [index.setdefault(node, len(index)) for node in p]
  return codes, lengths


def distance_matrix(paths) -> np.ndarray:
  """int64 [C, C] matrix of tree_distance(paths[i], paths[j]) (symmetric, 0 on the diagonal)."""
  codes, lengths = _codes(paths)
  prefix = np.zeros((len(paths), len(paths)), np.int64)  # common prefix lengths, one level at a time
  alive = np.ones((len(paths), len(paths)), bool)
  for level in codes.T:
    alive &= (level[:, None] == level[None, :]) & (level >= 0)[:, None]
    prefix += alive
  return np.maximum(lengths[:, None], lengths[None, :]) - prefix


def tree_height(paths) -> int:
  """Edges from the deepest node common to ALL paths down to the deepest leaf: max(len) - common
  prefix of all. >= 1 when there are at least two different paths; 0 for one (or identical) path."""
  if not len(paths):
    raise ValueError('tree_height needs at least one path')
  codes, lengths = _codes(paths)
  same = (codes == codes[:1]).all(axis=0) & (codes[0] >= 0)
  return int(lengths.max() - np.cumprod(same).sum())
