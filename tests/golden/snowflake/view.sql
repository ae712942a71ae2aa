SELECT table_type, comment, created FROM information_schema.tables WHERE table_schema = 'GOLD' AND table_name = 'NORTH_READINGS';
CREATE OR REPLACE VIEW north_readings AS SELECT id, value FROM readings WHERE site = 'north';
