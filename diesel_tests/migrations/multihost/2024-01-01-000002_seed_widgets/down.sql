DELETE FROM widgets WHERE name = 'first';
