-- Run once, by the postgres image, when its data volume is first made (as POSTGRES_USER, the
-- owner: `closeloop db upgrade` runs as it). The api, workers and beat log in as
-- closeloop_service, a member of closeloop_app: the role the migrations grant the service's
-- rights to (made here first, so that membership can be given now; the migration finds it).
-- It owns no table, so it can neither disable the audit store's triggers nor alter or
-- truncate a table. Change the password here and in docker-compose.yml together.
CREATE ROLE closeloop_app NOLOGIN;
CREATE ROLE closeloop_service LOGIN PASSWORD 'closeloop_service' IN ROLE closeloop_app;
