import { getMetadataStorage } from 'class-validator';
import type { ValidationMetadata } from 'class-validator/types/metadata/ValidationMetadata';

type MetadataStorage = ReturnType<typeof getMetadataStorage>;
type Lookup = MetadataStorage['getTargetValidationMetadatas'];

const CACHED = Symbol('validationMetadataCached');

/**
 * class-validator looks up a class's validation rules afresh for every object it validates: it filters the
 * class's rules and walks every registered class for inherited ones, then groups them by property. A chat body
 * is a dozen nested objects, so in the plain-chat profile these lookups were a quarter of the validation pipe's
 * cost. The rules are fixed once the DTO classes are loaded, so the answers are kept: per class and options for
 * the lookup, per list of rules for the grouping. Lookups with validation groups (the gateway has none) are not
 * kept; registering a rule (a class loaded later) forgets everything kept.
 */
export function cacheValidationMetadata(storage: MetadataStorage = getMetadataStorage()): void {
  const marked = storage as MetadataStorage & { [CACHED]?: true };
  if (marked[CACHED]) return;
  marked[CACHED] = true;

  const lookup: Lookup = storage.getTargetValidationMetadatas.bind(storage);
  const group = storage.groupByPropertyName.bind(storage);
  let lookups = new Map<string, WeakMap<object, ValidationMetadata[]>>();
  let groupings = new WeakMap<ValidationMetadata[], Record<string, ValidationMetadata[]>>();

  storage.getTargetValidationMetadatas = (targetConstructor, targetSchema, always, strictGroups, groups) => {
    if (groups !== undefined && groups.length > 0) return lookup(targetConstructor, targetSchema, always, strictGroups, groups);
    const options = `${targetSchema}|${always}|${strictGroups}`;
    let byClass = lookups.get(options);
    if (!byClass) lookups.set(options, (byClass = new WeakMap()));
    let rules = byClass.get(targetConstructor);
    if (!rules) byClass.set(targetConstructor, (rules = lookup(targetConstructor, targetSchema, always, strictGroups, groups)));
    return rules;
  };
  storage.groupByPropertyName = (rules) => {
    let grouped = groupings.get(rules);
    if (!grouped) groupings.set(rules, (grouped = group(rules)));
    return grouped;
  };

  const forget = () => {
    lookups = new Map();
    groupings = new WeakMap();
  };
  for (const register of ['addValidationMetadata', 'addConstraintMetadata', 'addValidationSchema'] as const) {
    const original = (storage[register] as (argument: unknown) => void).bind(storage);
    (storage[register] as (argument: unknown) => void) = (argument) => {
      forget();
      original(argument);
    };
  }
}
