# frozen_string_literal: true

# How values cross the wire: JSON (integers stay integers) plus named blobs.
#
#   json, blobs = Snakepit::Values.encode({ "image" => png.b, "n" => 3 })
#   Snakepit::Values.decode(json, blobs)   # => { "image" => "\x89PNG...", "n" => 3 }
#
# A binary String (encoding ASCII-8BIT, e.g. from String#b or File.binread) becomes a blob;
# the JSON holds {"__blob__": name} in its place. A blob with a dtype/shape (a numpy array on
# the Python side) decodes to a Snakepit::Blob and encodes back unchanged. Other strings must
# be valid UTF-8. Symbols become strings, Struct/Data their fields, Set an array, Time an
# ISO 8601 string; anything else is refused with an error naming its class.

require "json"
require "set"
require "time"

module Snakepit
  # Binary data with the dtype/shape/content-type metadata of the wire's Blob message.
  Blob = Struct.new(:data, :dtype, :shape, :content_type, keyword_init: true) do
    def to_pb
      PB::Blob.new(data: data.to_s.b, dtype: dtype.to_s, shape: Array(shape),
                   content_type: content_type.to_s)
    end
  end

  # A value with no JSON or blob form; #type_name names its class.
  class Unserializable < TypeError
    attr_reader :type_name

    def initialize(type_name, why = nil)
      @type_name = type_name
      super("values of type #{type_name} cannot be sent#{why ? " (#{why})" : ''} " \
            "(JSON values, binary strings, Snakepit::Blob, Struct, Set and Time can)")
    end
  end

  # JSON + blobs encoding and decoding (stateless).
  module Values
    BLOB_KEY = "__blob__"

    module_function

    # [json_bytes, { name => PB::Blob }]; raises Unserializable.
    def encode(value)
      blobs = {}
      json = JSON.generate(plain(value, blobs, 0), max_nesting: false)
      [json.b, blobs]
    rescue JSON::GeneratorError => e
      raise Unserializable.new(value.class.name, e.message.lines.first.to_s.strip)
    end

    # Plain JSON (no blobs), for details and metadata; never raises for odd values.
    def dumps(value)
      JSON.generate(plain(value, nil, 0), max_nesting: false).b
    rescue JSON::GeneratorError
      JSON.generate(value.inspect).b
    end

    # The value of JSON bytes + blobs; empty bytes are nil. Raises ArgumentError.
    def decode(json, blobs = nil)
      text = json.to_s.dup.force_encoding(Encoding::UTF_8)
      raise ArgumentError, "JSON is not valid UTF-8" unless text.valid_encoding?
      value = text.empty? ? nil : JSON.parse(text, max_nesting: MAX_DEPTH)
      blobs.nil? || blobs.length.zero? ? value : restore(value, blobs)
    rescue JSON::ParserError => e
      raise ArgumentError, "invalid JSON: #{e.message.lines.first.to_s.strip[0, 200]}"
    end

    def restore(value, blobs)
      case value
      when Array then value.map { |v| restore(v, blobs) }
      when Hash
        if value.size == 1 && value.key?(BLOB_KEY)
          name = value[BLOB_KEY]
          blob = blobs[name] or
            raise ArgumentError, "JSON refers to blob #{name.inspect}, which the message lacks"
          blob_value(blob)
        else
          value.transform_values { |v| restore(v, blobs) }
        end
      else value
      end
    end

    def blob_value(blob)
      data = blob.data.dup.force_encoding(Encoding::BINARY)
      return data if blob.dtype.empty? && blob.shape.empty? && blob.content_type.empty?
      Blob.new(data: data, dtype: blob.dtype, shape: blob.shape.to_a,
               content_type: blob.content_type)
    end

    MAX_DEPTH = 256 # as orjson

    # `value` as plain JSON data. blobs: the blob map to fill, or nil for dumps (which shows
    # what it cannot encode with #inspect instead of raising).
    def plain(value, blobs, depth)
      if depth > MAX_DEPTH
        raise Unserializable.new(value.class.name, "nested deeper than #{MAX_DEPTH}") if blobs
        return value.inspect[0, 200]
      end
      case value
      when nil, true, false, Integer then value
      when Float then value.finite? ? value : nil # as orjson: NaN and infinities are null
      when String then string(value, blobs)
      when Symbol then value.to_s
      when Array, Set then value.map { |v| plain(v, blobs, depth + 1) }
      when Hash then value.each_with_object({}) { |(k, v), out| out[key(k, blobs)] = plain(v, blobs, depth + 1) }
      when Blob then blob_ref(value.to_pb, blobs)
      when Struct then plain(value.to_h, blobs, depth + 1)
      when Time then value.iso8601(6)
      when Rational then value.to_f
      else
        return plain(value.to_h, blobs, depth + 1) if defined?(Data) && value.is_a?(Data)
        return value.inspect[0, 200] if blobs.nil?
        raise Unserializable, value.class.name || value.class.inspect
      end
    end

    def key(k, blobs)
      case k
      when String, Symbol, Integer, Float, true, false, nil
        text = k.to_s
        text = text.dup.force_encoding(Encoding::UTF_8) if text.encoding == Encoding::BINARY
        string(text, blobs)
      else
        raise Unserializable.new(k.class.name, "as a Hash key") if blobs
        k.inspect
      end
    end

    def string(value, blobs)
      return blob_ref(PB::Blob.new(data: value), blobs) if value.encoding == Encoding::BINARY && blobs
      return "<#{value.bytesize} bytes>" if value.encoding == Encoding::BINARY # dumps
      utf8 = value.encoding == Encoding::UTF_8 ? value : value.encode(Encoding::UTF_8)
      return utf8 if utf8.valid_encoding?
      raise Unserializable.new("String", "invalid #{value.encoding} text") if blobs
      utf8.scrub
    rescue EncodingError
      raise Unserializable.new("String", "#{value.encoding} text without a UTF-8 form") if blobs
      value.b.inspect
    end

    def blob_ref(pb_blob, blobs)
      return "<#{pb_blob.data.bytesize} bytes>" if blobs.nil?
      name = "b#{blobs.size}"
      blobs[name] = pb_blob
      { BLOB_KEY => name }
    end
  end
end
