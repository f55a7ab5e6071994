"""WordNet hypernym paths: a hand-built data.noun in the real format, then the real WordNet 3.0 file.

The real paths below were worked out by hand with grep on /usr/share/wordnet/data.noun (first '@'
pointer of each line, up to entity), not with the module under test.
"""
import os

import numpy as np
import pytest

from cil_jax.input_pipeline import wordnet

# A tiny data.noun in the wndb format: license header lines start with two spaces, w_cnt is hex,
# pointers are `symbol offset pos source/target`, then ' | gloss'. The tree (first hypernyms):
#   R(1) -> a(10) -> c(30) -> e(50, instance: '@i' only)
#   R(1) -> b(20) -> d(40, '@' b first, then '@' c) -> f(60, '@i' a listed before '@' d)
# c has 12 words (w_cnt '0c': read as decimal it would not parse).
TINY = """\
  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.  By obtaining, using
00000001 03 n 01 root 0 002 ~ 00000010 n 0000 ~ 00000020 n 0000 | the root; not @ 00000030 n 0000
00000010 03 n 02 alpha 0 alpha_node 1 003 @ 00000001 n 0000 ~ 00000030 n 0000 + 00123456 v 0101 | first child
00000020 03 n 01 beta 0 003 @ 00000001 n 0000 ~ 00000040 n 0000 ~ 00000030 n 0000 | second child
00000030 05 n 0c gamma 0 g1 0 g2 0 g3 0 g4 0 g5 0 g6 0 g7 0 g8 0 g9 0 g10 0 g11 0 004 @ 00000010 n 0000 \
~ 00000040 n 0000 ~i 00000050 n 0000 %p 00000020 n 0000 | many words
00000040 05 n 01 delta 0 003 @ 00000020 n 0000 @ 00000030 n 0000 ~ 00000060 n 0000 | two hypernyms
00000050 18 n 02 Epsilon 0 Mr._Epsilon 0 001 @i 00000030 n 0000 | an instance
00000060 05 n 01 phi 0 002 @i 00000010 n 0000 @ 00000040 n 0000 | instance and hypernym
"""
R, A, B, C, D, E, F = ('n00000001', 'n00000010', 'n00000020', 'n00000030', 'n00000040',
                       'n00000050', 'n00000060')
PATHS = {R: (R,), A: (R, A), B: (R, B), C: (R, A, C), D: (R, B, D), E: (R, A, C, E), F: (R, B, D, F)}


@pytest.fixture
def tiny(tmp_path):
  path = tmp_path / 'data.noun'
  path.write_text(TINY)
  return str(path)


@pytest.fixture
def no_wordnet(tmp_path, monkeypatch):
  """No WordNet anywhere the module looks."""
  monkeypatch.delenv(wordnet.ENV_VAR, raising=False)
  monkeypatch.setattr(wordnet, 'DEFAULT_PATHS', (str(tmp_path / 'absent' / 'data.noun'),))


def test_tiny_hypernyms_and_words(tiny):
  assert wordnet.load_hypernyms(tiny) == {1: (), 10: (1,), 20: (1,), 30: (10,), 40: (20, 30),
                                          50: (30,), 60: (40,)}
  assert wordnet.load_words(tiny) == {1: 'root', 10: 'alpha', 20: 'beta', 30: 'gamma', 40: 'delta',
                                      50: 'Epsilon', 60: 'phi'}
  assert wordnet.load_hypernyms(tiny) is wordnet.load_hypernyms(tiny)  # parsed once, cached


def test_tiny_paths_follow_first_hypernym(tiny):
  for wnid, expected in PATHS.items():
    assert wordnet.hypernym_path(wnid, tiny) == expected, wnid
  assert wordnet.hypernym_path(D, tiny) == (R, B, D)  # not (R, A, C, D): the first '@' is followed
  assert wordnet.hypernym_path(E, tiny) == (R, A, C, E)  # '@i' only: the instance hypernym
  assert wordnet.hypernym_path(F, tiny) == (R, B, D, F)  # '@' wins over an earlier '@i'


def test_tiny_distances(tiny):
  p = {w: wordnet.hypernym_path(w, tiny) for w in PATHS}
  assert wordnet.tree_distance(p[C], p[C]) == 0
  assert wordnet.tree_distance(p[C], p[E]) == 1  # common (R, a, c), e one below
  assert wordnet.tree_distance(p[E], p[C]) == 1
  assert wordnet.tree_distance(p[A], p[B]) == 1
  assert wordnet.tree_distance(p[C], p[D]) == 2
  assert wordnet.tree_distance(p[E], p[F]) == 3  # common (R,), both 3 below
  assert wordnet.tree_distance(p[R], p[E]) == 3
  order = [R, A, C, E, D, F]
  expected = np.array([[0, 1, 2, 3, 2, 3],
                       [1, 0, 1, 2, 2, 3],
                       [2, 1, 0, 1, 2, 3],
                       [3, 2, 1, 0, 3, 3],
                       [2, 2, 2, 3, 0, 1],
                       [3, 3, 3, 3, 1, 0]])
  matrix = wordnet.distance_matrix([p[w] for w in order])
  assert matrix.shape == (6, 6) and np.issubdtype(matrix.dtype, np.integer)
  np.testing.assert_array_equal(matrix, expected)
  assert wordnet.distance_matrix([]).shape == (0, 0)
  assert wordnet.tree_height([p[w] for w in order]) == 3
  assert wordnet.tree_height([p[A], p[C], p[E]]) == 2
  assert wordnet.tree_height([p[C], p[E]]) == 1
  assert wordnet.tree_height([p[E], p[F]]) == 3
  assert wordnet.tree_height([p[C], p[C]]) == 0
  assert wordnet.tree_height([p[C]]) == 0
  with pytest.raises(ValueError):
    wordnet.tree_height([])


def test_bad_and_unknown_wnids(tiny):
  for bad in ('n0000003', '00000030', 'N00000030', 'n000000300', 'n0000003x', 30):
    with pytest.raises(ValueError, match=f"bad WordNet noun id {bad!r}: expected 'n' followed by 8 digits"):
      wordnet.hypernym_path(bad, tiny)
  with pytest.raises(ValueError, match="unknown WordNet noun id 'n00000002': no synset at that offset"):
    wordnet.hypernym_path('n00000002', tiny)


def test_cycle_is_an_error(tmp_path):
  path = tmp_path / 'data.noun'
  path.write_text('00000001 03 n 01 x 0 001 @ 00000002 n 0000 | x\n'
                  '00000002 03 n 01 y 0 001 @ 00000001 n 0000 | y\n')
  with pytest.raises(ValueError, match="hypernym cycle at n00000001 on the path of 'n00000001'"):
    wordnet.hypernym_path('n00000001', str(path))


def test_find_data_noun(tiny, no_wordnet, monkeypatch, tmp_path):
  assert wordnet.find_data_noun(tiny) == tiny
  assert wordnet.find_data_noun(os.path.dirname(tiny)) == tiny  # a folder holding data.noun
  with pytest.raises(FileNotFoundError) as info:
    wordnet.find_data_noun(str(tmp_path / 'nope' / 'data.noun'))
  message = str(info.value)
  assert message == ('WordNet 3.0 data (data.noun) not found; install the Debian/Ubuntu package '
                     'wordnet-base (apt-get install wordnet-base) or set WORDNET_DATA to the folder '
                     'holding data.noun')
  with pytest.raises(FileNotFoundError, match='apt-get install wordnet-base'):
    wordnet.hypernym_path(A)
  monkeypatch.setenv(wordnet.ENV_VAR, os.path.dirname(tiny))
  assert wordnet.find_data_noun() == tiny
  assert wordnet.hypernym_path(C) == PATHS[C]


# ---- the real WordNet 3.0 (Debian/Ubuntu wordnet-base) ----

REAL = '/usr/share/wordnet/data.noun'
TOP = ('n00001740', 'n00001930', 'n00002684', 'n00003553')  # entity, physical_entity, object, whole
ANIMAL = TOP + ('n00004258', 'n00004475', 'n00015388', 'n01466257', 'n01471682')
# ... living_thing, organism, animal, chordate, vertebrate
TENCH = ANIMAL + ('n01473806', 'n02512053', 'n02514825', 'n02528163', 'n01428580', 'n01438208',
                  'n01439121', 'n01440764')
# ... aquatic_vertebrate, fish, bony_fish, teleost_fish, soft-finned_fish, cypriniform_fish,
#     cyprinid, tench
DOG = ANIMAL + ('n01861778', 'n01886756', 'n02075296', 'n02083346', 'n02084071')
# ... mammal, placental, carnivore, canine, dog (dog's second hypernym, domestic_animal
#     n01317541, is not followed)
DALMATIAN = DOG + ('n02110341',)
GUITAR = TOP + ('n00021939', 'n03575240', 'n03183080', 'n03800933', 'n04338517', 'n03467517',
                'n03272010')
# ... artifact, instrumentality, device, musical_instrument, stringed_instrument, guitar,
#     electric_guitar
EINSTEIN = ('n00001740', 'n00001930', 'n00002684', 'n00003553', 'n00004258', 'n00004475',
            'n00007846', 'n10560637', 'n10428004', 'n10954498')
# ... living_thing, organism, person (first of organism / causal_agent), scientist, physicist,
#     Einstein (an instance: '@i' physicist)


@pytest.fixture(scope='module')
def real():
  if not os.path.isfile(REAL):
    pytest.skip(f'{REAL} missing (apt-get install wordnet-base)')
  wordnet.load_hypernyms(REAL)  # the one parse, cached for the tests below
  return REAL


def test_real_paths(real):
  assert wordnet.hypernym_path('n01440764', real) == TENCH
  assert wordnet.hypernym_path('n02084071', real) == DOG
  assert wordnet.hypernym_path('n02110341', real) == DALMATIAN
  assert wordnet.hypernym_path('n03272010', real) == GUITAR
  assert wordnet.hypernym_path('n10954498', real) == EINSTEIN
  assert wordnet.load_hypernyms(real)[2084071] == (2083346, 1317541)
  words = wordnet.load_words(real)
  assert [words[int(w[1:])] for w in DALMATIAN[-3:]] == ['canine', 'dog', 'dalmatian']
  assert words[3272010] == 'electric_guitar'
  assert len(wordnet.load_hypernyms(real)) == 82115  # synsets of WordNet 3.0's data.noun


def test_real_distances(real):
  paths = [wordnet.hypernym_path(w, real) for w in ('n01440764', 'n02110341', 'n02084071', 'n03272010')]
  # tench / dalmatian: common down to vertebrate (9 nodes); tench 17 nodes deep -> 8
  assert wordnet.tree_distance(paths[0], paths[1]) == 8
  # tench / electric guitar: common down to whole (4 nodes); tench 17 deep -> 13
  assert wordnet.tree_distance(paths[0], paths[3]) == 13
  np.testing.assert_array_equal(wordnet.distance_matrix(paths), [[0, 8, 8, 13],
                                                                 [8, 0, 1, 11],
                                                                 [8, 1, 0, 10],
                                                                 [13, 11, 10, 0]])
  assert wordnet.tree_height(paths) == 13
  assert wordnet.tree_height(paths[1:3]) == 1


def test_real_errors(real):
  with pytest.raises(ValueError, match="unknown WordNet noun id 'n99999999'"):
    wordnet.hypernym_path('n99999999', real)
  with pytest.raises(ValueError, match="bad WordNet noun id '01440764'"):
    wordnet.hypernym_path('01440764', real)
