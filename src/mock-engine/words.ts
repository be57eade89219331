// The simulator's output text: plain English words, one per token id (id modulo the list's length). It is
// not a real tokenizer's decode; it only makes the text deterministic and readable.
export const WORDS: readonly string[] = (
  "the of and to in is it that for on was with as at by be this from or have an they which one you " +
  "had not but what all were when we there can more if out so said up its about into than them only " +
  "other new some could time these two may then do first any my now such like our over man me even " +
  "most made after also did many before must through back years where much your way well down should " +
  "because each just those people how too little state good very make world still own see men work " +
  "long get here between both life being under never day same another know while last might us great " +
  "old year off come since against go came right used take three river stone light water green house " +
  "small bright quiet road field north winter summer morning evening city garden window table paper " +
  "music story answer number letter mountain forest ocean island bridge market school friend family " +
  "question reason system program engine signal memory cache block token route model request result " +
  "value order point place group change problem study early late open close begin end follow carry " +
  "bring build keep hold turn move live believe happen write provide sit stand lose pay meet include " +
  "continue set learn lead understand watch speak read spend grow offer remember consider appear buy " +
  "wait serve die send expect stay fall cut reach kill remain suggest raise pass sell require report"
).split(" ");

export function wordOf(tokenId: number): string {
  return ` ${WORDS[tokenId % WORDS.length]!}`;
}
