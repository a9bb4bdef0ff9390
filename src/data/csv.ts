/** CSV with a header row, parsed by `csv-parse` (BOM stripped, empty lines skipped, header names trimmed, each record's last line number kept for messages). */
import { parse } from 'csv-parse/sync';

/** A parsed CSV table: trimmed header names and one record per data row with its line number. */
export interface CsvTable {
  readonly header: string[];
  readonly records: { readonly record: Record<string, string>; readonly info: { readonly lines: number } }[];
}

/** Parse CSV text with a header row (field delimiter default `,`); throws `csv-parse`'s error on invalid CSV (callers add the file name). */
export function parseCsvTable(text: string, delimiter = ','): CsvTable {
  let header: string[] = [];
  const records = parse(text, {
    bom: true,
    delimiter,
    skip_empty_lines: true,
    info: true,
    columns: (h: string[]) => {
      header = h.map((c) => c.trim());
      return header;
    },
  }) as CsvTable['records'];
  return { header, records };
}
