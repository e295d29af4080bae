import { expect } from 'chai';
import { LineFramer } from '../../../plugins/transport-stdio/index.js';

function collect(maxLineBytes = 1024): { framer: LineFramer; lines: string[]; dropped: number[] } {
  const lines: string[] = [];
  const dropped: number[] = [];
  const framer = new LineFramer(maxLineBytes, {
    line: (buf, start, end) => void lines.push(buf.toString('utf8', start, end)),
    oversize: (bytes) => void dropped.push(bytes),
  });
  return { framer, lines, dropped };
}

describe('transport-stdio: LineFramer', () => {
  it('splits many lines in one chunk', () => {
    const { framer, lines } = collect();
    framer.push(Buffer.from('a\nbb\n\nccc\n'));
    expect(lines).to.deep.equal(['a', 'bb', '', 'ccc']);
  });

  it('joins a line cut at every byte, multi-byte characters included', () => {
    const text = '{"t":"é€😀"}';
    const bytes = Buffer.from(`${text}\n${text}\n`);
    const { framer, lines } = collect();
    for (let i = 0; i < bytes.length; i++) framer.push(bytes.subarray(i, i + 1));
    expect(lines).to.deep.equal([text, text]);
  });

  it('keeps the tail of a chunk for the next one', () => {
    const { framer, lines } = collect();
    framer.push(Buffer.from('one\ntw'));
    framer.push(Buffer.from('o\nthr'));
    framer.push(Buffer.from('ee'));
    expect(lines).to.deep.equal(['one', 'two']);
    framer.push(Buffer.from('\n'));
    expect(lines).to.deep.equal(['one', 'two', 'three']);
  });

  it('drops a line over the limit, whether it comes whole or in pieces, and goes on', () => {
    const { framer, lines, dropped } = collect(10);
    framer.push(Buffer.from('0123456789ABC\nok\n'));
    framer.push(Buffer.from('01234'));
    framer.push(Buffer.from('56789'));
    framer.push(Buffer.from('ABCDEF'));
    framer.push(Buffer.from('GH\nfine\n'));
    framer.push(Buffer.from('0123456789\n'));
    expect(lines).to.deep.equal(['ok', 'fine', '0123456789']);
    expect(dropped).to.deep.equal([13, 18]);
  });

  it('hands over a last line without a newline at the end of the stream', () => {
    const { framer, lines } = collect();
    framer.push(Buffer.from('a\nlast'));
    framer.end();
    expect(lines).to.deep.equal(['a', 'last']);
  });
});
