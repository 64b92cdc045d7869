import { IsInt, IsString, MetadataStorage, validateSync, ValidateNested } from 'class-validator';
import { Type } from 'class-transformer';
import { ChatMessageDto, ChatRequestDto, ResponseFormatDto } from '../api/dto/chat-request.dto';
import { EmbeddingsRequestDto } from '../api/dto/embeddings-request.dto';
import { OpenAiChatRequestDto } from '../api/dto/openai.dto';
import { cacheValidationMetadata } from './validation-metadata-cache';
import { getMetadataStorage } from 'class-validator';

describe('cacheValidationMetadata', () => {
  const storage = getMetadataStorage();
  const uncached = new MetadataStorage();
  // A second storage with the same rules and no cache, to compare with.
  beforeAll(() => {
    const all = storage as unknown as { validationMetadatas: Map<unknown, unknown[]>; constraintMetadatas: Map<unknown, unknown[]> };
    const copy = uncached as unknown as typeof all;
    for (const [target, rules] of all.validationMetadatas) copy.validationMetadatas.set(target, [...rules]);
    for (const [target, rules] of all.constraintMetadatas) copy.constraintMetadatas.set(target, [...rules]);
    cacheValidationMetadata();
  });

  it.each([ChatRequestDto, ChatMessageDto, ResponseFormatDto, EmbeddingsRequestDto, OpenAiChatRequestDto])(
    'finds the same rules for %p as class-validator does, once',
    (dto) => {
      const first = storage.getTargetValidationMetadatas(dto, '', false, false, undefined);
      expect(first).toEqual(uncached.getTargetValidationMetadatas(dto, '', false, false, undefined));
      expect(storage.getTargetValidationMetadatas(dto, '', false, false, undefined)).toBe(first);
      expect(storage.groupByPropertyName(first)).toEqual(uncached.groupByPropertyName(first));
      expect(storage.groupByPropertyName(first)).toBe(storage.groupByPropertyName(first));
      // Other options are other answers.
      expect(storage.getTargetValidationMetadatas(dto, '', true, false, undefined)).toEqual(uncached.getTargetValidationMetadatas(dto, '', true, false, undefined));
      expect(storage.getTargetValidationMetadatas(dto, '', false, false, ['a-group'])).toEqual(uncached.getTargetValidationMetadatas(dto, '', false, false, ['a-group']));
    },
  );

  it('forgets what it kept when a rule is registered later, and validates by the new rules', () => {
    class Inner {
      @IsString()
      name!: string;
    }
    class Outer {
      @ValidateNested()
      @Type(() => Inner)
      inner!: Inner;
    }
    const outer = Object.assign(new Outer(), { inner: Object.assign(new Inner(), { name: 'x' }) });
    expect(validateSync(outer, { forbidUnknownValues: true })).toEqual([]);
    const before = storage.getTargetValidationMetadatas(Inner, '', false, false, undefined);

    // A rule added to Inner after it was validated (as a class loaded later would add its own).
    IsInt()(Inner.prototype, 'count');

    expect(storage.getTargetValidationMetadatas(Inner, '', false, false, undefined)).not.toBe(before);
    expect(validateSync(outer).map((error) => error.property)).toEqual(['inner']);
  });

  it('is installed once however often it is called', () => {
    const lookup = storage.getTargetValidationMetadatas;
    cacheValidationMetadata();
    expect(storage.getTargetValidationMetadatas).toBe(lookup);
  });
});
