-- Placeholder: the queue schema arrives in the next migration file.
select 1;
