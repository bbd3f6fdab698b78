-- memq_search_text (0001) in linear time with a small constant. translate() looks every
-- character of its text up in its map by walking the map from the start: 252 comparisons for
-- each character it does not map (any ASCII one), 0.1-0.3 s for a 245 KB text, all of it
-- inside the writer's batch. The results are the same, character for character (the
-- generated search columns already hold the old ones; tests/postgres/test_search_text.py
-- compares the two on a varied corpus):
-- * a text with nothing to fold (pure ASCII: as many bytes as characters; or none of the
--   letters of U+00C0-U+024F, which hold every letter the map folds) skips translate;
-- * a Latin text (ASCII and U+00C0-U+024F only) is translated once with the map led by the
--   ASCII letters, digits and white space and the most common accented letters (those the
--   map lacks mapped to themselves; punctuation is gone by then), so the walk for most
--   characters stops early;
-- * any other text (Cyrillic, CJK, emoji, ... with some accented letter) translates only its
--   runs of U+00C0-U+024F (memq_search_fold_runs): a character the map lacks would cost the
--   whole walk.
-- normalize(NFKD) with the combining marks removed would not give the same results (it
-- decomposes ligatures, Hangul and letters outside the map, and leaves Ø, Đ, Ł, Ħ as they
-- are); unaccent is an extension a memq schema cannot count on. Ranges in a regular
-- expression compare code points, whatever the database's locale.

CREATE FUNCTION memq_search_fold_runs(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN (SELECT string_agg(
                   m[1] || translate(m[2],
                                     'éàèáíóúçñüöäâêôûëïîãõåøłśźżąęčšžřňďťůőűăşţğÀÁÂÃÄÅÇÈÉÊËÌÍ'
                                     || 'ÎÏÑÒÓÔÕÖÙÚÛÜÝìòùýÿĀāĂĄĆćĈĉĊċČĎĒēĔĕĖėĘĚěĜĝĞĠġĢģĤĥĨĩĪīĬĭĮį'
                                     || 'İĴĵĶķĹĺĻļĽľŃńŅņŇŌōŎŏŐŔŕŖŗŘŚŜŝŞŠŢŤŨũŪūŬŭŮŰŲųŴŵŶŷŸŹŻŽƠơƯưǍ'
                                     || 'ǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕ'
                                     || 'ȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳØĐđŁĦħ',
                                     'eaeaioucnuoaaeoueiiaoaolszzaecszrndtuouastgAAAAAACEEEEII'
                                     || 'IINOOOOOUUUUYiouyyAaAACcCcCcCDEeEeEeEEeGgGGgGgHhIiIiIiIi'
                                     || 'IJjKkLlLlLlNnNnNOoOoORrRrRSSsSSTTUuUuUuUUUuWwYyYZZZOoUuA'
                                     || 'aIiOoUuUuUuUuUuAaAaGgKkOoOojGgNnAaAaAaEeEeIiIiOoOoRrRrUu'
                                     || 'UuSsTtHhAaEeOoOoOoOoYyODdLHh'),
                   '' ORDER BY n)
        FROM regexp_matches(t, '([^À-ɏ]*)([À-ɏ]*)', 'g') WITH ORDINALITY AS r (m, n));

CREATE OR REPLACE FUNCTION memq_search_text(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN CASE
    WHEN octet_length(t) = char_length(t) OR t !~ '[À-ɏ]'
        THEN regexp_replace(t, '[!-/:-@\[-`{-~]+', ' ', 'g')
    WHEN t !~ '[^\x01-\x7FÀ-ɏ]'
        THEN translate(regexp_replace(t, '[!-/:-@\[-`{-~]+', ' ', 'g'),
                       ' etaoinsrhldcumfpgwybvkxjqzéàèçôûêëïîüöäâáíóúñãõåøœæß'
                       || chr(10) || chr(9) || chr(13) || '0123456789ETAOINSRHLDCUMFPGWYBVKXJQZ'
                       || 'łśźżąęčšžřňďťůőűăşţğÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝìòùýÿĀāĂĄĆ'
                          || 'ćĈĉĊċČĎĒēĔĕĖėĘĚěĜĝĞĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇŌōŎŏŐŔŕ'
                          || 'ŖŗŘŚŜŝŞŠŢŤŨũŪūŬŭŮŰŲųŴŵŶŷŸŹŻŽƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǦǧǨǩ'
                          || 'ǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳØ'
                          || 'ĐđŁĦħ',
                       ' etaoinsrhldcumfpgwybvkxjqzeaecoueeiiuoaaaiounaoaoœæß'
                       || chr(10) || chr(9) || chr(13) || '0123456789ETAOINSRHLDCUMFPGWYBVKXJQZ'
                       || 'lszzaecszrndtuouastgAAAAAACEEEEIIIINOOOOOUUUUYiouyyAaAAC'
                          || 'cCcCcCDEeEeEeEEeGgGGgGgHhIiIiIiIiIJjKkLlLlLlNnNnNOoOoORr'
                          || 'RrRSSsSSTTUuUuUuUUUuWwYyYZZZOoUuAaIiOoUuUuUuUuUuAaAaGgKk'
                          || 'OoOojGgNnAaAaAaEeEeIiIiOoOoRrRrUuUuSsTtHhAaEeOoOoOoOoYyO'
                          || 'DdLHh')
    ELSE memq_search_fold_runs(regexp_replace(t, '[!-/:-@\[-`{-~]+', ' ', 'g'))
END;
